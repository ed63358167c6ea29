//! `/admin/scrobbling` (behind the session layer): the tokens players and scrobblers submit
//! listens with, per listener: make one (shown once, with the base URLs and settings to paste
//! into each kind of client), see the last submission each received, revoke. And `/api/auth/`,
//! where the admin lets a Last.fm desktop client (`auth.getToken`) scrobble as a listener.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::{Deserialize, Serialize};

use super::Frame;
use crate::auth::Session;
use crate::{App, WebError};

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    listener: String,
    label: String,
    created: String,
    last_submission: Option<String>,
    last_client: Option<String>,
}

/// A token just made, with what to paste where.
#[derive(Debug, Serialize)]
struct Made {
    token: String,
    listener: String,
}

#[derive(Debug, Default, Serialize)]
struct ScrobblingPage {
    csrf: String,
    tokens: Vec<Row>,
    listeners: Vec<String>,
    base_url: String,
    lastfm_api_key: String,
    lastfm_api_secret: String,
    created: Option<Made>,
    error: Option<String>,
    /// `/api/auth/`: the request token waiting for approval, and whether it was approved.
    request: Option<String>,
    approved: Option<String>,
}

fn render(app: &App, status: StatusCode, data: ScrobblingPage, template: &'static str) -> Response {
    crate::admin::page(
        app,
        status,
        &Frame::plain(app, "Players and scrobblers", "admin", "/admin/scrobbling"),
        &data,
        template,
    )
}

async fn listing(
    app: &App,
    session: &Session,
    headers: &HeaderMap,
) -> Result<ScrobblingPage, WebError> {
    let scrobbling = app.scrobbling();
    let internal = |e: magpie_music::submit::tokens::TokenError| WebError::Internal(e.to_string());
    let tokens = scrobbling.tokens.list(None).map_err(internal)?;
    let api = scrobbling.tokens.api_key().map_err(internal)?;
    let (last, mut listeners) = scrobbling
        .read(|s| Ok((s.last_submissions()?, s.listener_names()?)))
        .await?;
    for t in &tokens {
        if !listeners.contains(&t.listener) {
            listeners.push(t.listener.clone());
        }
    }
    Ok(ScrobblingPage {
        csrf: session.csrf.clone(),
        tokens: tokens
            .into_iter()
            .map(|t| {
                let seen = last.get(&t.id);
                Row {
                    last_submission: seen
                        .map(|(at, _)| at.format("%Y-%m-%d %H:%M UTC").to_string()),
                    last_client: seen.map(|(_, client)| client.clone()),
                    id: t.id,
                    listener: t.listener,
                    label: t.label.unwrap_or_default(),
                    created: t.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                }
            })
            .collect(),
        listeners,
        base_url: super::base_url(app, headers),
        lastfm_api_key: api.key,
        lastfm_api_secret: api.secret,
        ..Default::default()
    })
}

/// `GET /admin/scrobbling`.
pub async fn list(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    match listing(&app, &session, &headers).await {
        Ok(data) => render(&app, StatusCode::OK, data, "scrobbling.html"),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    listener: String,
    #[serde(default)]
    label: String,
}

/// `POST /admin/scrobbling`: make a token.
pub async fn create(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let listener = form.listener.trim().to_string();
    let made = app.scrobbling().tokens.create(&listener, Some(&form.label));
    let mut data = match listing(&app, &session, &headers).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    match made {
        Ok(made) => {
            tracing::info!(token = %made.info.id, listener = %made.info.listener, "a listen token was made");
            data.created = Some(Made {
                token: made.token,
                listener: made.info.listener,
            });
            render(&app, StatusCode::OK, data, "scrobbling.html")
        }
        Err(e) => {
            data.error = Some(e.to_string());
            render(&app, StatusCode::BAD_REQUEST, data, "scrobbling.html")
        }
    }
}

/// `POST /admin/scrobbling/{id}/revoke`.
pub async fn revoke(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.scrobbling().tokens.revoke(&id) {
        Ok(info) => {
            tracing::info!(token = %info.id, listener = %info.listener, "a listen token was revoked");
            Redirect::to("/admin/scrobbling").into_response()
        }
        Err(magpie_music::submit::tokens::TokenError::UnknownToken(_)) => {
            WebError::NotFound(format!("no token `{id}`")).into_response()
        }
        Err(e) => WebError::Internal(e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthQuery {
    token: Option<String>,
}

/// `GET /api/auth/?api_key=…&token=…`: let a Last.fm desktop client scrobble as a listener.
pub async fn authorize(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Query(q): Query<AuthQuery>,
) -> Response {
    let mut data = match listing(&app, &session, &headers).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let token = q.token.unwrap_or_default();
    if !app.scrobbling().pending(&token) {
        data.error = Some(
            "This authorization request is unknown or has expired: start again from the application."
                .into(),
        );
        return render(&app, StatusCode::NOT_FOUND, data, "scrobbling_auth.html");
    }
    data.request = Some(token);
    render(&app, StatusCode::OK, data, "scrobbling_auth.html")
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    token: String,
    listener: String,
}

/// `POST /api/auth/`: the admin approves the request for a listener.
pub async fn approve(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ApproveForm>,
) -> Response {
    let mut data = match listing(&app, &session, &headers).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let listener = form.listener.trim();
    if !magpie_music::submit::tokens::valid_listener(listener) {
        data.error = Some(format!("`{listener}` is not a listener name"));
        return render(&app, StatusCode::BAD_REQUEST, data, "scrobbling_auth.html");
    }
    if app.scrobbling().approve(&form.token, listener) {
        tracing::info!(listener = %listener, "a Last.fm desktop client was authorized");
        data.approved = Some(listener.to_string());
        render(&app, StatusCode::OK, data, "scrobbling_auth.html")
    } else {
        data.error = Some("This authorization request is unknown or has expired.".into());
        render(&app, StatusCode::NOT_FOUND, data, "scrobbling_auth.html")
    }
}

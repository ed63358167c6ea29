//! The Spotify admin pages: connecting listeners' Spotify accounts through a [`Connector`]
//! the running binary provides (the paste-back flow, as on the command line). They sit behind
//! the session layer ([`crate::auth::guard::require_session`]): a handler here is reached only
//! with a live admin session, and a form only with its CSRF token.

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};

use crate::auth::Session;
use crate::pages::Frame;
use crate::render::{self, Format, Rendered, Table};
use crate::{App, WebError};

/// A future the connector returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A listener's Spotify connection as the admin page shows it (never a token).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedListener {
    pub name: String,
    pub status: String,
    pub authorisation_ends: String,
}

/// Connects Spotify accounts; implemented by the binary over magpie-music.
pub trait Connector: Send + Sync {
    /// The redirect URI to register in the Spotify dashboard.
    fn redirect_uri(&self) -> String;
    fn listeners(&self) -> Vec<ConnectedListener>;
    /// Begin connecting `listener`: the authorize link.
    fn start(&self, listener: &str) -> Result<String, String>;
    /// Finish with the pasted redirect URL: a success message.
    fn finish<'a>(
        &'a self,
        listener: &'a str,
        pasted: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
    /// Finish a direct redirect to magpie's own `/callback` (when the redirect URI points at
    /// this server): the attempt is found by its unguessable `state`.
    fn finish_redirect<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// An HTML page of `template` with `data`, answered with `status`.
pub(crate) fn page<T: Serialize>(
    app: &App,
    status: StatusCode,
    frame: &Frame,
    data: &T,
    template: &'static str,
) -> Response {
    let rendered = crate::pages::context(frame, data).map(|data| Rendered {
        template,
        data,
        charts: Vec::new(),
        table: Table::default(),
        name: "admin".into(),
    });
    let mut response = render::respond(app.templates(), Format::Html, rendered);
    // A page that failed to render keeps its error status.
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}

#[derive(Debug, Default, Serialize)]
struct SpotifyPage {
    available: bool,
    redirect_uri: String,
    listeners: Vec<ConnectedListener>,
    /// Set after "Connect": the link to open and the listener being connected.
    link: Option<String>,
    connecting: Option<String>,
    message: Option<String>,
    error: Option<String>,
    /// The session's CSRF token, for the forms.
    csrf: Option<String>,
}

fn spotify_page(app: &App, status: StatusCode, mut data: SpotifyPage) -> Response {
    if let Some(c) = app.connector() {
        data.available = true;
        data.redirect_uri = c.redirect_uri();
        data.listeners = c.listeners();
    }
    page(
        app,
        status,
        &Frame::plain(app, "Connect Spotify", "admin", "/admin/spotify"),
        &data,
        "admin_spotify.html",
    )
}

pub async fn spotify(State(app): State<App>, Extension(session): Extension<Session>) -> Response {
    spotify_page(
        &app,
        StatusCode::OK,
        SpotifyPage {
            csrf: Some(session.csrf),
            ..Default::default()
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    listener: String,
}

fn valid_listener(name: &str) -> Result<(), WebError> {
    if (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(WebError::BadRequest(
            "a listener name has 1 to 40 letters, digits, - or _".into(),
        ))
    }
}

pub async fn spotify_start(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<StartForm>,
) -> Response {
    let listener = form.listener.trim().to_string();
    let result = connector_for(&app, &listener).and_then(|c| c.start(&listener));
    match result {
        Ok(link) => spotify_page(
            &app,
            StatusCode::OK,
            SpotifyPage {
                link: Some(link),
                connecting: Some(listener),
                csrf: Some(session.csrf),
                ..Default::default()
            },
        ),
        Err(error) => refused(&app, error, Some(session.csrf)),
    }
}

/// The Spotify page after connecting.
fn connected(app: &App, message: String, csrf: Option<String>) -> Response {
    spotify_page(
        app,
        StatusCode::OK,
        SpotifyPage {
            message: Some(message),
            csrf,
            ..Default::default()
        },
    )
}

/// The Spotify page with an error, as a 400.
fn refused(app: &App, error: String, csrf: Option<String>) -> Response {
    spotify_page(
        app,
        StatusCode::BAD_REQUEST,
        SpotifyPage {
            error: Some(error),
            csrf,
            ..Default::default()
        },
    )
}

/// The connector, if this process has one and the listener name is valid.
fn connector_for<'a>(app: &'a App, listener: &str) -> Result<&'a dyn Connector, String> {
    valid_listener(listener).map_err(|e| e.to_string())?;
    app.connector()
        .ok_or_else(|| "Spotify is not available here".to_string())
}

#[derive(Debug, Deserialize)]
pub struct FinishForm {
    listener: String,
    pasted: String,
}

pub async fn spotify_finish(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<FinishForm>,
) -> Response {
    let listener = form.listener.trim();
    let result = match connector_for(&app, listener) {
        Ok(connector) => connector.finish(listener, &form.pasted).await,
        Err(error) => Err(error),
    };
    let csrf = Some(session.csrf);
    match result {
        Ok(message) => connected(&app, message, csrf),
        Err(error) => refused(&app, error, csrf),
    }
}

/// `/callback`: Spotify's redirect straight to magpie (when `spotify.redirect_uri` points at
/// this server). No session is needed: the `state` ties it to an attempt an admin started, and
/// only this server holds that attempt's PKCE verifier.
pub async fn callback(State(app): State<App>, jar: CookieJar, uri: axum::http::Uri) -> Response {
    let csrf = app.auth().session(&jar).map(|s| s.csrf);
    let Some(connector) = app.connector() else {
        return refused(&app, "Spotify is not available here".into(), csrf);
    };
    let url = format!("http://magpie{uri}");
    match connector.finish_redirect(&url).await {
        Ok(message) => connected(&app, message, csrf),
        Err(error) => refused(&app, error, csrf),
    }
}
